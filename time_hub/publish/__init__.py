"""Model cards and pushing models, Spaces and collections to the Hugging Face Hub."""
