//! Generic HTTP scheduler adapter: our JSON protocol and declarative YAML profiles for other HTTP farms.
//!
//! Not implemented yet.
