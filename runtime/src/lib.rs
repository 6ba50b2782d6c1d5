//! ciphergpt runtime.
