"""Context functions of the kernel families, one module per family."""
