//! Evaluation of a TraceQL query over whole traces.
