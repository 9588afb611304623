"""The site's sign-up signal (Django has none): sent with ``request`` and ``user``, like allauth's
``user_signed_up``. ``CELERIAC_SIGNUP_SIGNAL`` points at it."""

from django.dispatch import Signal

user_signed_up = Signal()
