"""The fine-tuned risk classifier and the base encoder it sits on."""
