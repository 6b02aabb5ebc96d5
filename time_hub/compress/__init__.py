"""Model compression after distillation: vocabulary trimming (`vocab.py`), and room for pruning and committees."""
