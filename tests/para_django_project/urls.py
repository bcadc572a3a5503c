from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("sync/me", views.me),
    path("sync/evm", views.evm),
    path("async/me", views.ame),
    path("async/evm", views.aevm),
    path("who", views.who),
    path("awho", views.awho),
    path("public", views.public),
    path("profile", views.Profile.as_view()),
    path("aprofile", views.AsyncProfile.as_view()),
    path("email-only", views.EmailOnly.as_view()),
    path("drf/me", views.DrfMe.as_view()),
    path("drf/evm", views.DrfEvm.as_view()),
    path("drf/public", views.DrfPublic.as_view()),
    path("drf/default", views.DrfDefault.as_view()),
    path("matrix/me", views.MatrixMe.as_view()),
    path("matrix/evm", views.MatrixEvm.as_view()),
]
