"""Item response theory: Rasch CML, MML graded/GPCM models, scores, information, item fit, DIF and
short forms."""
from instrument.irt.mml import IRTResult, irt
from instrument.irt.rasch import RaschResult, person_parameters, rasch
from instrument.irt.dif import DIFResult, dif
from instrument.irt.itemfit import q3, s_x2
from instrument.irt.scoring import fscores, information, item_information

__all__ = ["DIFResult", "IRTResult", "RaschResult", "dif", "q3", "s_x2", "fscores", "information", "irt", "item_information",
           "person_parameters", "rasch"]
