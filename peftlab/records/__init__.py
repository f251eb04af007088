"""The run record (the contract between layers), reading and writing it, predictions, the environment."""
