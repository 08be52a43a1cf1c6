"""elcrec.training: the training layer (folder training/ of the design card, installed as elcrec.training)."""
