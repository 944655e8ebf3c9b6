"""The one exception users of video QA see: bad input, missing checkpoint files, unknown names."""

from common.errors import UserError


class VideoQAError(UserError):
    """A mistake the user can fix; the CLI prints it as one line and exits with status 2."""
