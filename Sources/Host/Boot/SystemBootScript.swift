extension SystemLayout {
    /// The iPXE script of this system with the operator's tuning arguments.
    ///
    /// Throws a ``BootRefusal``: a ``SystemLayoutError`` unless the path is a NixOS system whose
    /// `init`, `kernel` and `kernel-params` lie in its closure, a ``KernelLineError`` when
    /// `kernel-params` holds control characters or the kernel line would be longer than the kernel
    /// keeps.
    package func bootScript(prefix: String, suffix: String) throws -> IPXEScript {
        try requireSystem()
        let parameters = try IPXEScript.kernelParameters(try kernelParameters(), of: root)
        let script = IPXEScript(path: root, kernelParameters: parameters, prefix: prefix, suffix: suffix)
        try script.checkKernelLine()
        return script
    }
}
