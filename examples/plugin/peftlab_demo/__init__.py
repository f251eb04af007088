"""peftlab plugins of one's own: a method (BitFit) and a task (classification scored by balanced accuracy)."""
