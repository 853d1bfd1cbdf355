"""Fast float64 evaluation of the registry's statements over many instances."""
