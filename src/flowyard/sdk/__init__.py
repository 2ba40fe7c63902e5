"""The Flowyard Python client: `from flowyard.sdk import Client`."""

from flowyard.sdk.client import Client, login
from flowyard.sdk.errors import NotConfigured, Unreachable, WaitTimeout

__all__ = ["Client", "NotConfigured", "Unreachable", "WaitTimeout", "login"]
