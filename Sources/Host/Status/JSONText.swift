/// A JSON value written as text (the host has no Foundation): enough for the status answer.
package indirect enum JSONText: Sendable {
    /// An object whose keys keep the order they were first set in.
    package struct Object: Sendable {
        private(set) var pairs: [(String, JSONText)] = []
        package init() {}
        package subscript(key: String) -> JSONText? {
            get { pairs.first { $0.0 == key }?.1 }
            set {
                let index = pairs.firstIndex { $0.0 == key }
                switch (index, newValue) {
                case (let index?, let value?): pairs[index].1 = value
                case (let index?, nil): pairs.remove(at: index)
                case (nil, let value?): pairs.append((key, value))
                case (nil, nil): break
                }
            }
        }
    }

    case null
    case bool(Bool)
    case int(Int64)
    case uint(UInt64)
    /// A finite number, written with up to three decimals (non-finite ones as `null`).
    case number(Double)
    case string(String)
    case array([JSONText])
    case object(Object)

    /// The value as compact JSON text.
    package var rendered: String {
        switch self {
        case .null: return "null"
        case .bool(let value): return value ? "true" : "false"
        case .int(let value): return "\(value)"
        case .uint(let value): return "\(value)"
        case .number(let value): return value.isFinite ? PackingProgress.decimal(value, places: 3) : "null"
        case .string(let value): return Self.quoted(value)
        case .array(let values): return "[" + values.map(\.rendered).joined(separator: ",") + "]"
        case .object(let object): return "{" + object.pairs.map { Self.quoted($0.0) + ":" + $0.1.rendered }.joined(separator: ",") + "}"
        }
    }

    /// `text` as a JSON string: quotes, backslashes and control characters escaped.
    package static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x2028 || scalar.value == 0x2029:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
