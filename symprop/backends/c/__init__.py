"""The C target: a C99 header and source per spec, allocation-free, one sample at a time."""
