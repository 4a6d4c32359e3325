"""The radios start after the home agent serves (ha/daemon/service.py BackgroundStart)."""

from __future__ import annotations

import asyncio

from ha.daemon.service import BackgroundStart


class SlowRadios:
    """A component whose start takes long, as hostapd on the board."""

    def __init__(self, seconds: float = 0.2):
        self.seconds = seconds
        self.events: list[str] = []
        self.state = "up"

    async def start(self):
        self.events.append("start")
        await asyncio.sleep(self.seconds)
        self.events.append("started")

    async def stop(self):
        self.events.append("stop")

    async def status(self):
        return ["row"]


def test_start_returns_at_once_and_runs_once_the_daemon_serves():
    async def main():
        serving = asyncio.Event()
        comp = SlowRadios()
        bg = BackgroundStart("wireless", comp, after=serving)
        await bg.start()
        await asyncio.sleep(0.05)
        assert comp.events == [] and bg.state == "starting"
        serving.set()
        await asyncio.sleep(0.05)
        assert comp.events == ["start"] and bg.state == "starting"
        await asyncio.sleep(0.3)
        assert comp.events == ["start", "started"] and bg.state == "up"
        assert bg.started_at is not None
        assert await bg.status() == ["row"]  # the component's own methods pass through
        await bg.stop()
        assert comp.events[-1] == "stop"
    asyncio.run(main())


def test_stop_during_a_start_cancels_it_and_stops_the_component():
    async def main():
        serving = asyncio.Event()
        comp = SlowRadios(seconds=10)
        bg = BackgroundStart("wireless", comp, after=serving)
        await bg.start()
        serving.set()
        await asyncio.sleep(0.05)
        await asyncio.wait_for(bg.stop(), 2)
        assert comp.events == ["start", "stop"]
    asyncio.run(main())


def test_a_failed_start_leaves_the_daemon_serving():
    class Broken(SlowRadios):
        async def start(self):
            raise OSError("no nl80211")

    async def main():
        bg = BackgroundStart("wireless", Broken())
        await bg.start()
        await asyncio.sleep(0.05)
        assert bg.started_at is not None   # done, with the error logged
        await bg.stop()
    asyncio.run(main())
