"""Chat: the ChatML format (template.py) that SFT trains on and chat/serve speak."""
from model.chat.template import CHATML_TEMPLATE, IM_END, IM_START, ROLES, ChatFormat, check_messages

__all__ = ["CHATML_TEMPLATE", "IM_END", "IM_START", "ROLES", "ChatFormat", "check_messages"]
