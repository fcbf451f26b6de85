import NetbootKit

extension HydraSource: BootSourceModule {
    public static var optionsTitle: String { "Hydra source" }
}
