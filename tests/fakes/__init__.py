"""Test doubles that are real code: fake SaaS servers, fake clocks."""
