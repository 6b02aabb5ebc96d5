"""time-hub: tiny monolingual encoders distilled from multilingual teachers (MiniLMv2), published on the Hub."""

__version__ = "0.1.0"
