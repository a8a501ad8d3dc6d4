"""The explorer's web page: viser widgets wired to an :class:`~avatar.explorer.state.ExplorerState`.

Left panel: the designer sliders by group, with presets, random, reset and
downloads. Right panel: one slider per latent component (-3..+3 sd) and bars
of the designer slider changes a latent move implies. Centre: the avatar.

All the math lives in :mod:`.state`; this module only turns page events into
state edits and state changes into messages. Page events edit the state at
once (under a lock); a single sender thread then ships whatever is newest, so a
fast drag never queues stale meshes.
"""
from __future__ import annotations

import html
import threading
import time
from dataclasses import dataclass

import numpy as np

from avatar.spec.config import ConfigError
from .display import DisplayMesh, encode_image
from .guard import MAX_UPLOAD, ClientGuard
from .state import CODE_LIMIT, Change, ExplorerState, readable, validate_code, validate_value
BAR_ROWS = 12
SKIN = (204, 163, 138)


@dataclass
class _Pending:
    """What the sender still has to ship (merged over edits it has not caught up with)."""

    geometry: bool = False
    texture: bool = False
    codes: bool = False     # set the latent sliders to the state's codes
    bars: bool = False      # redraw the status line and the implied-change bars
    designer: bool = False  # set the designer sliders to the state's values

    def merge(self, change: Change, designer: bool = False, from_latent: bool = False) -> None:
        self.geometry |= change.geometry
        self.texture |= change.texture
        # a latent edit changes only the code its slider already shows: writing the codes back
        # mid-drag would snap the thumb to a value the server has not caught up with yet
        self.codes |= change.codes and not from_latent
        self.bars |= change.geometry or change.codes or change.texture
        self.designer |= designer

    def any(self) -> bool:
        return self.geometry or self.texture or self.codes or self.bars or self.designer


def _nice_step(span: float) -> float:
    """A round step giving about 200 positions over ``span`` (0.5 for 0..100)."""
    raw = span / 200.0
    exp = 10.0 ** np.floor(np.log10(raw))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * exp >= raw * 0.99:
            return float(m * exp)
    return float(raw)


class Explorer:
    """A running explorer page.

    Parameters
    ----------
    state : ExplorerState
    host, port : where to serve (127.0.0.1 unless exposing it is meant).
    title : shown at the top of the left panel.
    """

    def __init__(self, state: ExplorerState, host: str = "127.0.0.1", port: int = 8080, title: str = ""):
        import viser

        self.state = state
        self.lock = threading.RLock()
        self.display = DisplayMesh(state.rig.template)
        self.server = viser.ViserServer(host=host, port=port, verbose=False)
        # the gate for every client message: own origin only, only `value` on our widgets, every value
        # validated before viser stores or broadcasts it, uploads bounded by their declared size
        self.guard = ClientGuard(self.server, MAX_UPLOAD, notify=self._notify_client)
        # viser lets any client ask for a public share URL (a tunnel through viser's relay on the
        # internet); the page must stay where --host put it, so that request is refused here.
        self.server.request_share_url = self._refuse_share
        self.textured = True
        self.pushes = 0          # meshes sent (tests and benchmarks read it)
        self.last_push_ms = 0.0  # server time of the last mesh send: pack + queue
        self._pending = _Pending()
        self._wake = threading.Condition()
        self._image = encode_image(state.texture)
        self._seed = 0
        self._stop = False
        self._scene()
        self._designer_panel(title)
        self._latent_panel()
        self._guard_widgets()
        self._push(texture_changed=True)
        self._sync_latent()
        self._sender = threading.Thread(target=self._send_loop, name="explorer-sender", daemon=True)
        self._sender.start()

    # -- life cycle ---------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host = self.server.get_host()
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.server.get_port()}"

    @staticmethod
    def _refuse_share(*_args, **_kwargs) -> None:
        print("explorer: a client asked for a public share URL; refused (use --host to expose the page)")
        return None

    def stop(self) -> None:
        self._stop = True
        with self._wake:
            self._wake.notify_all()
        self.server.stop()

    def _notify_client(self, client_id: int, title: str, body: str) -> None:
        client = self.server._connected_clients.get(client_id)
        if client is not None:
            client.add_notification(title, body, color="red", auto_close_seconds=8.0)

    def _guard_widgets(self) -> None:
        """Which widget values a client may set, each with the server-side check it must pass first."""
        g, state = self.guard, self.state

        def button(handle):
            def check(value):
                if value is not True or handle.disabled:
                    raise ValueError(f"button {handle.label!r} cannot be pressed that way")
            return check

        def text(value):
            if not isinstance(value, str) or len(value) > 200 or not value.isprintable():
                raise ValueError("a preset name is one line of at most 64 letters, digits, - or _")

        def preset(value):
            if value not in self.d_preset.options:
                raise ValueError(f"unknown preset {str(value)[:80]!r}")

        def flag(value):
            if not isinstance(value, bool):
                raise ValueError("expected true or false")

        for name, handle in self.inputs.items():
            g.accept(handle, lambda v, name=name: validate_value(state.spec, name, v))
        for i, handle in enumerate(self.latent_inputs):
            g.accept(handle, lambda v, i=i: validate_code(state.latent.n_components, i, v))
        for handle in (self.b_random, self.b_reset, self.b_load, self.b_save, self.b_preset_download,
                       self.b_glb, self.b_apply, self.b_back):
            g.accept(handle, button(handle))
        g.accept(self.t_name, text)
        g.accept(self.d_preset, preset)
        g.accept(self.c_texture, flag)
        g.accept_uploads(self.b_upload)

    # -- scene --------------------------------------------------------------------------------------
    def _scene(self) -> None:
        scene, server = self.server.scene, self.server
        scene.set_up_direction("+y")
        server.initial_camera.position = (0.0, 1.0, 2.7)
        server.initial_camera.look_at = (0.0, 0.9, 0.0)
        # plain lights, no environment map: its prefiltering costs a software-rendering browser
        # (headless tests, remote desktops) 10-15 s before the first frame, for little gain on skin
        scene.configure_environment_map(None)
        scene.add_light_hemisphere("/lights/sky", sky_color=(255, 255, 255), ground_color=(130, 120, 110),
                                   intensity=1.5, position=(0.0, 5.0, 0.0))
        scene.add_light_directional("/lights/key", intensity=1.5, position=(1.5, 3.0, 4.0))
        server.gui.configure_theme(show_share_button=False, control_width="large")
        scene.add_grid("/ground", width=4.0, height=4.0, plane="xz", cell_size=0.25, section_size=1.0)
        self.mesh, self._mesh_kind = None, None

    def _push(self, texture_changed: bool = True) -> None:
        """Send the avatar on show: a textured GLB, or bare positions on the untextured mesh."""
        from avatar.checks import check_finite

        t0 = time.perf_counter()
        with self.lock:
            V, tex = self.state.vertices, self.state.texture
        check_finite(V, "the avatar on show")  # never serve a NaN/inf mesh (the sender reports it)
        if self.textured:
            if texture_changed:
                self._image = encode_image(tex)
            glb = self.display.glb(V, self._image)
            if self._mesh_kind == "glb":
                self.mesh.glb_data = glb
            else:
                self._replace_mesh("glb", lambda: self.server.scene.add_glb("/avatar", glb))
        elif self._mesh_kind == "positions":
            self.mesh.vertices = np.asarray(V, np.float32)  # positions only: the library allows it here
        else:
            self._replace_mesh("positions", lambda: self.server.scene.add_mesh_simple(
                "/avatar", np.asarray(V, np.float32), self.state.rig.faces, color=SKIN))
        self.pushes += 1
        self.last_push_ms = (time.perf_counter() - t0) * 1e3

    def _replace_mesh(self, kind: str, add) -> None:
        if self.mesh is not None:
            self.mesh.remove()
        self.mesh, self._mesh_kind = add(), kind

    # -- the sender ---------------------------------------------------------------------------------
    def _schedule(self, change: Change, designer: bool = False, from_latent: bool = False) -> None:
        with self._wake:
            self._pending.merge(change, designer, from_latent)
            self._wake.notify()

    def _send_loop(self) -> None:
        while not self._stop:
            with self._wake:
                while not self._pending.any() and not self._stop:
                    self._wake.wait()
                if self._stop:
                    return
                todo, self._pending = self._pending, _Pending()
            try:
                if todo.geometry or todo.texture:
                    self._push(texture_changed=todo.texture)
                with self.server.atomic():
                    if todo.designer:
                        self._sync_designer()
                    if todo.codes or todo.bars:
                        self._sync_latent(codes=todo.codes)
            except Exception as err:  # noqa: BLE001 - keep serving; say what failed
                print(f"explorer: could not update the page: {err}")

    # -- left: designer sliders ------------------------------------------------------------------
    def _designer_panel(self, title: str) -> None:
        gui, state = self.server.gui, self.state
        gui.main_panel.dock_left()
        gui.main_panel.set_width(380)
        gui.add_markdown(f"**Designer sliders** {html.escape(title)}  \n"
                         "Readable, disentangled: each moves one named thing.")
        self.inputs = {}
        with gui.add_folder("Avatar", expand_by_default=True):
            self.b_random = gui.add_button("Random avatar")
            self.b_reset = gui.add_button("Reset")
            names = sorted(state.presets)
            self.d_preset = gui.add_dropdown("Preset", options=names or ["(none)"],
                                             initial_value=names[0] if names else "(none)")
            self.b_load = gui.add_button("Load preset", disabled=not names)
            self.b_upload = gui.add_upload_button("Open preset YAML…", mime_type=".yaml,.yml,text/yaml")
            can_save = state.preset_dir is not None
            self.t_name = gui.add_text("Preset name", "my-avatar", disabled=not can_save,
                                       hint=f"saved as {state.preset_dir}/<name>.yaml" if can_save else
                                       "start with --preset-dir DIR to save presets on the server")
            self.b_save = gui.add_button("Save preset", disabled=not can_save)
            self.b_preset_download = gui.add_button("Download preset YAML")
            self.b_glb = gui.add_button("Download GLB")
            self.c_texture = gui.add_checkbox("Show texture", True,
                                              hint="off: untextured, and a slider move sends vertex positions only")
        for group in state.spec.groups:
            sliders = [s for s in state.rig.sliders if s.group == group]
            if not sliders:
                continue
            with gui.add_folder(group.capitalize(), expand_by_default=group == "body"):
                for s, x in zip(state.rig.sliders, state.values):
                    if s.group == group:
                        self.inputs[s.name] = self._designer_input(s, x)
        self._wire_buttons()

    def _designer_input(self, s, x):
        gui = self.server.gui
        short = s.name.split(".", 1)[1].replace("_", " ")
        unit = "" if s.unit == "none" else f" ({s.unit})"
        hint = f"{s.name}: {s.description}"
        if s.kind == "categorical":
            handle = gui.add_dropdown(short, options=list(s.categories), initial_value=s.categories[int(x)],
                                      hint=hint)
        elif s.kind == "bool":
            handle = gui.add_checkbox(short, bool(x), hint=hint)
        elif s.kind == "integer":
            handle = gui.add_slider(short + unit, int(s.min), int(s.max), 1, int(x), hint=hint)
        else:
            handle = gui.add_slider(short + unit, float(s.min), float(s.max), _nice_step(s.max - s.min),
                                    float(x), hint=hint)

        @handle.on_update
        def _(event, name=s.name, handle=handle):
            if event.client is None:  # our own write-back, not the user
                return
            self._edit(event, lambda: self.state.set_slider(name, handle.value), revert=True)

        return handle

    def _wire_buttons(self) -> None:
        @self.b_random.on_click
        def _(event):
            self._seed += 1
            seed = self._seed
            self._edit(event, lambda: self.state.randomize(seed), designer=True)
            self._tell(event, "Random avatar", f"seed {seed}: the same avatar as `avatar random --seed {seed}`",
                       color="blue")

        @self.b_reset.on_click
        def _(event):
            self._edit(event, self.state.reset, designer=True)

        @self.b_load.on_click
        def _(event):
            self._edit(event, lambda: self.state.load_preset(self.d_preset.value), designer=True)

        @self.b_upload.on_upload
        def _(event):
            f = self.b_upload.value
            if len(f.content) > MAX_UPLOAD:
                self._tell(event, "Not loaded", f"{f.name} is larger than {MAX_UPLOAD // 1024} kB")
                return
            try:
                text = f.content.decode("utf-8")
            except UnicodeDecodeError:
                self._tell(event, "Not loaded", f"{f.name} is not UTF-8 text")
                return
            name = "".join(c for c in f.name if c.isprintable())[:80]
            self._edit(event, lambda: self.state.load_preset_text(text, file=name), designer=True)

        @self.b_save.on_click
        def _(event):
            try:
                with self.lock:
                    path = self.state.save_preset(self.t_name.value)
            except (ConfigError, OSError) as err:
                self._tell(event, "Not saved", str(err))
                return
            self._tell(event, "Preset saved", str(path), color="green")
            names = sorted(self.state.presets)
            self.d_preset.options = names
            self.b_load.disabled = False

        @self.b_preset_download.on_click
        def _(event):
            with self.lock:
                text = self.state.preset_yaml("explorer")
            event.client.send_file_download("avatar-preset.yaml", text.encode(), save_immediately=True)

        @self.b_glb.on_click
        def _(event):
            with self.lock:
                data = self.state.glb()
            event.client.send_file_download("avatar.glb", data, save_immediately=True)

        @self.c_texture.on_update
        def _(event):
            self.textured = bool(self.c_texture.value)
            self._schedule(Change(geometry=True, texture=True))

    # -- right: latent sliders and the implied designer changes -----------------------------------
    def _latent_panel(self) -> None:
        gui, lv = self.server.gui, self.state.latent
        panel = gui.add_panel()
        with panel.add_tab("Learned latent"):
            ratio = getattr(lv.model, "explained_variance_ratio_", None)
            kind = type(lv.model).__name__
            gui.add_markdown(f"**{html.escape(lv.name)}**: {kind}, {lv.n_components} components.  \n"
                             "Each slider runs -3 to +3 sd of the training codes.")
            self.m_status = gui.add_markdown("")
            self.latent_inputs = []
            for i in range(lv.n_components):
                label = f"z{i + 1}" + (f" ({100 * ratio[i]:.1f}%)" if ratio is not None and i < len(ratio) else "")
                handle = gui.add_slider(label, -CODE_LIMIT, CODE_LIMIT, 0.05, 0.0)

                @handle.on_update
                def _(event, i=i, handle=handle):
                    if event.client is None:
                        return
                    self._edit(event, lambda: self.state.set_code(i, handle.value), revert=True, from_latent=True)

                self.latent_inputs.append(handle)
            self.b_apply = gui.add_button("Set designer sliders to the implied values")
            self.b_back = gui.add_button("Back to the designer avatar")
            gui.add_markdown("**Designer sliders this latent move implies** (change, as a bar of each "
                             "slider's range):")
            self.h_bars = gui.add_html("")

        @self.b_apply.on_click
        def _(event):
            self._edit(event, self.state.apply_implied, designer=True)

        @self.b_back.on_click
        def _(event):
            self._edit(event, lambda: self.state.set_values(self.state.values), designer=True)

        panel.dock_right()
        panel.set_width(380)

    # -- edits --------------------------------------------------------------------------------------
    def _edit(self, event, edit, designer: bool = False, revert: bool = False, from_latent: bool = False) -> None:
        """Apply a state edit; a refused value is reported on the page and the widget put back."""
        try:
            with self.lock:
                change = edit()
        except (ConfigError, ValueError) as err:
            self._tell(event, "Value refused", str(err))
            if revert:  # put the widgets back to the state's values
                with self._wake:
                    self._pending.designer = self._pending.codes = self._pending.bars = True
                    self._wake.notify()
            return
        self._schedule(change, designer, from_latent)

    def _tell(self, event, title: str, body: str, color: str = "red") -> None:
        client = getattr(event, "client", None)
        if client is not None:
            client.add_notification(title, body, color=color, auto_close_seconds=8.0)
        else:
            print(f"explorer: {title}: {body}")

    def _sync_designer(self) -> None:
        with self.lock:
            values = self.state.values.copy()
        for s, x in zip(self.state.rig.sliders, values):
            handle = self.inputs[s.name]
            if s.kind == "categorical":
                handle.value = s.categories[int(x)]
            elif s.kind == "bool":
                handle.value = bool(x)
            elif s.kind == "integer":
                handle.value = int(x)
            else:
                handle.value = float(x)

    def _sync_latent(self, codes: bool = True) -> None:
        with self.lock:
            sd, mode, implied = self.state.code_sd.copy(), self.state.mode, self.state.implied.copy()
            error = self.state.reconstruction_mm
        for handle, x in zip(self.latent_inputs, sd if codes else ()):
            handle.value = float(np.clip(np.round(x, 2), -CODE_LIMIT, CODE_LIMIT))
        if mode == "designer":
            self.m_status.content = (f"Showing the **designer** avatar; the latent sliders show its codes "
                                     f"(reconstruction error {error:.2f} mm RMS).")
        else:
            self.m_status.content = ("Showing the **latent decoding**; the designer sliders keep the avatar "
                                     "it started from.")
        self.h_bars.content = self.bars_html(implied) if mode == "latent" else \
            "<p style='font-size:0.85em;color:#666'>Move a latent slider to see which designer sliders it moves.</p>"

    def bars_html(self, implied: np.ndarray) -> str:
        """HTML bars of the largest implied changes, as a fraction of each slider's range."""
        rig = self.state.rig
        spans = rig.spec.highs() - rig.spec.lows()
        frac = implied / np.where(spans > 0, spans, 1.0)
        order = [j for j in np.argsort(-np.abs(frac)) if abs(frac[j]) > 1e-4][:BAR_ROWS]
        if not order:
            return "<p style='font-size:0.85em'>No designer slider change: this move is outside their span.</p>"
        top = max(abs(frac[order[0]]), 1e-12)
        moved = int(np.sum(np.abs(frac) > 0.1 * top))
        rows = []
        for j in order:
            s, f = rig.sliders[j], frac[j]
            width = 50.0 * abs(f) / top
            left = 50.0 - width if f < 0 else 50.0
            colour = "#d9534f" if f < 0 else "#2b8a3e"
            sign = "+" if implied[j] >= 0 else "-"
            rows.append(
                "<div style='display:flex;align-items:center;font-size:0.8em;margin:1px 0'>"
                f"<span style='width:42%;overflow:hidden;white-space:nowrap'>{html.escape(s.name)}</span>"
                "<span style='position:relative;width:34%;height:0.9em;background:#f1f3f5'>"
                f"<span style='position:absolute;left:{left:.1f}%;width:{width:.1f}%;height:100%;"
                f"background:{colour}'></span></span>"
                f"<span style='width:24%;text-align:right;white-space:nowrap'>{sign}{html.escape(readable(s, abs(implied[j])))}</span>"
                "</div>")
        head = (f"<p style='font-size:0.8em;margin:2px 0'>{moved} designer slider(s) move by more than "
                f"10% of the largest change ({100 * top:.1f}% of its range).</p>")
        return f"<div style='padding:0 10px 8px 6px'>{head}{''.join(rows)}</div>"


def serve(explorer: Explorer) -> None:
    """Block until interrupted (Ctrl-C or SIGTERM), then stop the server."""
    import signal

    def interrupt(*_):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("avatar explore: stopped")
    finally:
        explorer.stop()


__all__ = ["Explorer", "serve"]
