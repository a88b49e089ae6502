"""The allocator's decision core and its adapters. Importable without faust."""

from allocator.channels import Channel, ResourceType
from allocator.tiers import Tier

__all__ = ["Channel", "ResourceType", "Tier"]
