//! Library side of `ciphergpt bench …`.
