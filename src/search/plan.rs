//! TraceQL to SQL over `spans`.
