"""Talking to RunPod: the control plane (templates, endpoints) and the serverless invoke API."""
