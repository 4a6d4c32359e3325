from setuptools import find_packages, setup

setup(
    name="denali",
    version="0.1.0",
    description="Mobile IPv6 home agent firmware: HA, RA sender, radios, haconf",
    packages=find_packages(include=["ha", "ha.*", "radvd", "radvd.*"]),
    package_data={"ha.config": ["denali.spec"]},
    python_requires=">=3.11",
    install_requires=[
        "pyroute2>=0.9,<0.10",
        "configobj>=5.0,<6",
        "click>=8.1,<9",
    ],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6", "scapy>=2.5"],
        "radio": ["pyric>=0.1.6"],
    },
    entry_points={
        "console_scripts": [
            "denalid = ha.daemon.main:main",
            "haconf = ha.haconf.quick:main",
        ],
    },
)
