"""The embedded model's scene world: the renderer, the tiny model and its trainer, the scene
labeler and the attribute classifier. Nothing here knows about probes or edits."""
