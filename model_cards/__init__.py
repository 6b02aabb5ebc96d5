"""Jinja templates of the generated model cards, shipped inside the package as `time_hub.model_cards`."""
