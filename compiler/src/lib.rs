//! ciphergpt compiler.
