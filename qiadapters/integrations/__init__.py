"""Integrations with other libraries, imported on demand (nothing here loads at
``import qiadapters``): :mod:`.transformers` (``AdapterTrainer``), :mod:`.trl`
(``AdapterSFTTrainer``, ``AdapterDPOTrainer``), :mod:`.peft` (stacking with peft's methods)."""
