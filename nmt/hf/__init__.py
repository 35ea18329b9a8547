"""Hugging Face models: import a MarianMT (OPUS-MT) folder as an nmt checkpoint, export an nmt Transformer."""
