"""elcrec.service: the service layer (folder service/ of the design card, installed as elcrec.service)."""
