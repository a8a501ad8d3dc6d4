"""The avatar as the browser draws it: a textured GLB packed fast, or bare vertex positions.

viser's vertex-updatable mesh (``add_mesh_simple``, whose handle's ``.vertices``
sends only positions) carries one colour and no UVs, so a *textured* avatar has
to travel as a GLB. :class:`DisplayMesh` keeps that cheap: the parts that never
change (UVs, triangles, the glTF header layout) are packed once; an update packs
only new positions and normals (:class:`avatar.body.template.VertexNormals`, one sparse product) and
reuses the texture's encoded image until a skin or tattoo slider changes it.
"""
from __future__ import annotations

import io

import numpy as np

from avatar.body.template import VertexNormals
from avatar.gltf import pack, pad as _pad

_FLOAT, _USHORT, _UINT = 5126, 5123, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


def encode_image(texture: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> tuple[bytes, str]:
    """(H, W, 3) uint8 -> (encoded bytes, MIME type); JPEG by default (10x smaller, 5x faster than PNG)."""
    from PIL import Image

    buf = io.BytesIO()
    image = Image.fromarray(np.asarray(texture, np.uint8))
    if fmt == "png":
        image.save(buf, format="PNG", compress_level=1)
        return buf.getvalue(), "image/png"
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue(), "image/jpeg"


class DisplayMesh:
    """Packs one template's avatars for the browser.

    Parameters
    ----------
    template : avatar.body.template.Template
        Its seam-split export mesh (``export_index``, ``export_uv``,
        ``export_faces``) is what the GLB holds, as :mod:`avatar.export` writes.
    """

    def __init__(self, template):
        self.export_index = np.asarray(template.export_index, np.int64)
        self.faces = np.asarray(template.faces, np.int64)               # (F, 3) solid
        self.export_faces = np.asarray(template.export_faces, np.int64)  # (F, 3) seam-split
        n_export = len(self.export_index)
        # glTF puts the UV origin top-left, our atlas bottom-left (as trimesh writes it)
        uv = np.asarray(template.export_uv, np.float32).copy()
        uv[:, 1] = 1.0 - uv[:, 1]
        index_type = np.uint16 if n_export < 65535 else np.uint32
        self._uv = uv.tobytes()
        self._indices = _pad(self.export_faces.astype(index_type).tobytes())
        self._index_type = _USHORT if index_type is np.uint16 else _UINT
        self._n_export, self._n_indices = n_export, self.export_faces.size
        self.normals = VertexNormals(template.faces, len(template.vertices))  # (V, 3) -> (V, 3) float32

    def export_positions(self, vertices: np.ndarray) -> np.ndarray:
        """(E, 3) float32: the seam-split positions (what the GLB and a vertex update send)."""
        return np.asarray(vertices, np.float32)[self.export_index]

    # -- GLB --------------------------------------------------------------------
    def glb(self, vertices: np.ndarray, image: tuple[bytes, str] | None) -> bytes:
        """A GLB of solid ``vertices`` (V, 3) metres, textured with ``image`` from :func:`encode_image`.

        Without an image the material is a plain skin colour.
        """
        pos = self.export_positions(vertices)
        nrm = self.normals(vertices)[self.export_index]
        chunks = [pos.tobytes(), nrm.tobytes(), self._uv, self._indices]
        if image is not None:
            chunks.append(_pad(image[0]))
        offsets = np.cumsum([0] + [len(c) for c in chunks])
        views = [{"buffer": 0, "byteOffset": int(offsets[i]), "byteLength": len(c)}
                 for i, c in enumerate(chunks)]
        for i in range(3):
            views[i]["target"] = _ARRAY_BUFFER
        views[3]["target"] = _ELEMENT_ARRAY_BUFFER
        views[3]["byteLength"] = self._n_indices * (2 if self._index_type == _USHORT else 4)
        if image is not None:
            views[4]["byteLength"] = len(image[0])
        accessors = [
            {"bufferView": 0, "componentType": _FLOAT, "count": self._n_export, "type": "VEC3",
             "min": pos.min(axis=0).tolist(), "max": pos.max(axis=0).tolist()},
            {"bufferView": 1, "componentType": _FLOAT, "count": self._n_export, "type": "VEC3"},
            {"bufferView": 2, "componentType": _FLOAT, "count": self._n_export, "type": "VEC2"},
            {"bufferView": 3, "componentType": self._index_type, "count": self._n_indices, "type": "SCALAR"},
        ]
        pbr = {"metallicFactor": 0.0, "roughnessFactor": 0.7}
        gltf = {"asset": {"version": "2.0", "generator": "avatar explorer"},
                "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0, "name": "avatar"}],
                "meshes": [{"primitives": [{"attributes": {"POSITION": 0, "NORMAL": 1, "TEXCOORD_0": 2},
                                            "indices": 3, "material": 0}]}],
                "materials": [{"name": "skin", "pbrMetallicRoughness": pbr}],
                "accessors": accessors, "bufferViews": views,
                "buffers": [{"byteLength": int(offsets[-1])}]}
        if image is not None:
            pbr["baseColorTexture"] = {"index": 0}
            gltf.update(images=[{"bufferView": 4, "mimeType": image[1]}],
                        samplers=[{"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071}],
                        textures=[{"sampler": 0, "source": 0}])
        else:
            pbr["baseColorFactor"] = [0.80, 0.64, 0.54, 1.0]
        return pack(gltf, b"".join(chunks))
