extension SystemLayout {
    /// The iPXE script of this system with the operator's tuning arguments.
    ///
    /// Throws a ``BootRefusal``: a ``SystemLayoutError`` unless the path is a NixOS system whose
    /// `init`, `kernel` and `kernel-params` lie in its closure, a ``KernelLineError`` when
    /// `kernel-params` holds control characters or the kernel line would be longer than the kernel
    /// keeps.
    /// `additionalArguments` and `overlayURL` are a source's per-machine additions.
    package func bootScript(prefix: String, suffix: String, additionalArguments: String = "", overlayURL: String? = nil) throws -> IPXEScript {
        try requireSystem()
        let parameters = try IPXEScript.kernelParameters(try kernelParameters(), of: root)
        var script = IPXEScript(path: root, kernelParameters: parameters, prefix: prefix, suffix: suffix)
        script.additionalArguments = additionalArguments
        script.overlayURL = overlayURL
        try script.checkKernelLine()
        return script
    }
}
