"""Injecting adapters into any ``nn.Module``, saving, loading and merging them."""
from .adapter_model import AdapterModel, get_adapter_model
from .hotswap import hotswap_adapter
from .io import FORMAT_VERSION, VERSION_KEY, WEIGHTS_NAME, adapter_state_dict
from .modules_to_save import ModulesToSave

__all__ = ["AdapterModel", "get_adapter_model", "hotswap_adapter", "ModulesToSave",
           "adapter_state_dict", "WEIGHTS_NAME", "VERSION_KEY", "FORMAT_VERSION"]
