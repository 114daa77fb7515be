"""tinycomp: trained models to bit-exact INT8 C for microcontrollers."""

__version__ = "0.1.0"
