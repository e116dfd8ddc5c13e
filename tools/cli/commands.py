"""Every command group, registered on the root `hcp` group. One import per module."""
from . import cli  # noqa: F401
from . import hall  # noqa: F401
from . import demo  # noqa: F401
from . import bench  # noqa: F401
from . import hardware  # noqa: F401
from . import rules  # noqa: F401
from . import calendar  # noqa: F401
from . import broker  # noqa: F401
from . import store  # noqa: F401
from . import staff  # noqa: F401
from . import forward  # noqa: F401
from . import device  # noqa: F401
from . import terminals  # noqa: F401
