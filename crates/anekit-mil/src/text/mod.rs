//! MIL text form (the `model.mil` syntax): printer and parser.
