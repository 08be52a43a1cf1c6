"""elcrec.model: the model layer (folder model/ of the design card, installed as elcrec.model)."""
