"""Money, when the user says what tokens cost: ``[agents.prices]`` in the config file (the one ``--llm``
reads: ``TLCLI_CONFIG``, ``./tlcli.toml`` or ``$TLCLI_HOME/config.toml``)::

    [agents.prices]
    currency = "USD"
    prompt_per_million = 0.15
    completion_per_million = 0.60

Without that table no cost is reported (tlcli never guesses a price).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tlcli.console.errors import UsageError


class Prices(BaseModel):
    model_config = ConfigDict(extra="forbid")
    currency: str = Field("USD", min_length=1, max_length=8)
    prompt_per_million: float = Field(ge=0, allow_inf_nan=False)
    completion_per_million: float = Field(ge=0, allow_inf_nan=False)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return round((prompt_tokens * self.prompt_per_million + completion_tokens * self.completion_per_million) / 1e6, 6)


def configured_prices() -> Prices | None:
    from tlcli.console.config_file import read_options_file
    from tlcli.llm.spec import config_file

    path = config_file()
    if path is None:
        return None
    agents = read_options_file(path, option="config file").get("agents")
    table = agents.get("prices") if isinstance(agents, dict) else None
    if table is None:
        return None
    try:
        return Prices(**table)
    except (ValidationError, TypeError) as error:  # TypeError: prices that are not a table
        raise UsageError(f"{path}: [agents.prices] needs prompt_per_million and completion_per_million "
                         f"(numbers >= 0) and an optional currency ({str(error).splitlines()[0]})") from None


def add_costs(summary: dict, prices: Prices | None) -> dict:
    """The summary with ``cost`` in total and per agent, when prices are configured."""
    if prices is None:
        return summary
    tokens = summary["tokens"]
    summary["cost"] = {"currency": prices.currency, "total": prices.cost(tokens["prompt"], tokens["completion"])}
    for usage in summary["per_agent"].values():
        usage["cost"] = prices.cost(usage["prompt_tokens"], usage["completion_tokens"])
    return summary
