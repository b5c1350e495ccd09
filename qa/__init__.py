"""qa: quality-assurance gates for fine-tuned image classifiers."""

__version__ = "0.1.0"
