"""The one exception users of video QA see: bad input, missing checkpoint files, unknown names."""


class VideoQAError(ValueError):
    """A mistake the user can fix; the CLI prints it as one line and exits with status 2."""

    user_error = True
