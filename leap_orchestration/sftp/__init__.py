"""The SFTP front door: partners upload interval data and read their results (asyncssh)."""
