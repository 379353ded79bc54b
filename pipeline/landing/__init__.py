"""Input: the Azure Blob landing (managed identity)."""
