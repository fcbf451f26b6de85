// Everything a module sees, the host sees too: the host is built on the kit.
@_exported import NetbootKit
