"""The procedural world: scene specs, renderer, captioner, and the judge that reads videos back."""
