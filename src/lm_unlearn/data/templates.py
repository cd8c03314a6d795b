"""Prompt formats: the tokenizer's chat template or a plain Question/Answer template."""

from __future__ import annotations

from dataclasses import dataclass, replace

from lm_unlearn.errors import ConfigError

PLAIN_PROMPT = "### Question: {prompt}\n### Answer: "


@dataclass(frozen=True)
class PromptFormat:
    """Turns a (prompt, response) pair into text and the character where the response starts."""

    tokenizer: object
    kind: str  # "chat" or "plain"
    system_prompt: str | None = None
    prefix: str = ""  # put before every prompt (an in-context unlearning wrapper); not raw text

    def with_prefix(self, prefix: str) -> PromptFormat:
        return replace(self, prefix=prefix)

    @classmethod
    def choose(cls, tokenizer, template: str, system_prompt: str | None = None) -> PromptFormat:
        has_chat = bool(getattr(tokenizer, "chat_template", None))
        if template == "chat" and not has_chat:
            raise ConfigError(
                "model.template is 'chat' but the tokenizer has no chat template; "
                "use model.template=plain (or auto)"
            )
        kind = "chat" if (template == "chat" or (template == "auto" and has_chat)) else "plain"
        return cls(tokenizer=tokenizer, kind=kind, system_prompt=system_prompt)

    def _messages(self, prompt: str) -> list[dict[str, str]]:
        messages = [{"role": "user", "content": self.prefix + prompt}]
        if self.system_prompt is not None:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        return messages

    def prompt_text(self, prompt: str) -> str:
        """The text a model is given to answer `prompt` (ends where the answer starts)."""
        if self.kind == "chat":
            return self.tokenizer.apply_chat_template(
                self._messages(prompt), tokenize=False, add_generation_prompt=True
            )
        return PLAIN_PROMPT.format(prompt=self.prefix + prompt)

    def render(self, prompt: str, response: str) -> tuple[str, int]:
        """Full text and the character offset where the response begins.

        Raw-text records (empty prompt) are the response alone, boundary 0. For chat templates
        the answer turn's closing tokens (e.g. <|im_end|>) belong to the response.
        """
        if prompt == "":
            return response, 0
        head = self.prompt_text(prompt)
        if self.kind == "chat":
            messages = self._messages(prompt) + [{"role": "assistant", "content": response}]
            full = self.tokenizer.apply_chat_template(messages, tokenize=False)
            if not full.startswith(head):
                # Some templates rewrite earlier turns once an answer follows; fall back to
                # the generation prompt plus the answer so the boundary stays exact.
                full = head + response
            return full, len(head)
        return head + response, len(head)
