from django.urls import path

from . import views

urlpatterns = [
    path("health", views.Health.as_view()),
    path("me", views.Me.as_view()),
    path("trades", views.Trades.as_view()),
]
