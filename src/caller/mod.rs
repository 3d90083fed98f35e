//! caller
