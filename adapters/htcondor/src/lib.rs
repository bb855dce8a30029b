//! HTCondor adapter: submit description files and the condor_* command line.
//!
//! Not implemented yet.
