"""trainer: a compact fine-tuning trainer that writes self-describing qa checkpoints."""
