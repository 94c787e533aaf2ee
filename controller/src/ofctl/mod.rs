//! `fuxi-ofctl`: an ovs-ofctl-style OpenFlow 1.3 command line tool.
