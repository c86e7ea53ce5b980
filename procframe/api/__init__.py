"""The public classes of procframe, independent of any backend."""
