"""Item response theory: Rasch CML, MML graded/GPCM models, scores, information, item fit, DIF and
short forms."""
from instrument.irt.mml import IRTResult, irt
from instrument.irt.rasch import RaschResult, person_parameters, rasch
from instrument.irt.dif import DIFResult, dif
from instrument.irt.lrdif import LRDIFResult, lrdif
from instrument.irt.itemfit import q3, s_x2
from instrument.irt.scoring import fscores, information, item_information
from instrument.irt.shortform import ShortFormResult, shortform

__all__ = ["DIFResult", "IRTResult", "LRDIFResult", "RaschResult", "ShortFormResult", "dif",
           "fscores", "information", "irt", "item_information", "lrdif", "person_parameters", "q3",
           "rasch", "s_x2", "shortform"]
