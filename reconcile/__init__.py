"""reconcile: Terraform for Marketo leads."""

__version__ = "0.1.0"
